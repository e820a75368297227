// placeholder: filled in by the softmax op group
