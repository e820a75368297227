// placeholder: filled in by the loss op group
