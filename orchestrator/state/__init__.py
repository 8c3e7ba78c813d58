"""ProcessRegistry and everything written under .gadugi/: atomic writes, locks, journal, schemas."""
