"""cvprep."""
