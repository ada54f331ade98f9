"""Builds the mailstack lab: PKI, rendered configuration, images, compose."""
