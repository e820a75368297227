// placeholder: filled in by the sort op group
