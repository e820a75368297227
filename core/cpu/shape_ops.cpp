// placeholder: filled in by the shape_ops op group
