"""AstroSpect: image-based photometric redshifts, end to end."""
