"""Qt adapters over the core: windows, models, workers, panels."""
