"""Building blocks shared by two or more model families."""
