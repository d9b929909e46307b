"""Data shipped with gallery_app (installed as gallery_app.resources): expansions, icons."""
