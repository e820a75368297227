// placeholder: filled in by the indexing op group
