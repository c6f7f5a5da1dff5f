"""Measures of a trained model: plain functions registered by name (``registry``); the
built-in ones and running them: ``catalog``."""
