"""`roadedge controller`: the fog-zone variable speed-limit controller."""
