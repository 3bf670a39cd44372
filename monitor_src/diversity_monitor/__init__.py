"""Recommender-diversity monitor for SageMaker Model Monitor."""

__version__ = "0.1.0"
