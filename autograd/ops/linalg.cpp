// placeholder: filled in by the linalg op group
