"""gallery_app: find photos in local folders by what they show."""

__version__ = "0.1.0"
