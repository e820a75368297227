// placeholder: filled in by the norm op group
