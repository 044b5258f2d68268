"""`bizon new source`: a new connector from templates."""
