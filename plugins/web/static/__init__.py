"""ie-web's stylesheet (no JavaScript build: plain files served as they are)."""
