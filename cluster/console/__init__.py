"""Consoles of interactive apps ("interact with desktop"): a framed, authenticated TCP relay of
an app's pty, served by its node, and followed across failovers by ``hacluster attach``."""
