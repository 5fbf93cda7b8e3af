"""hanotepad: a cluster-unaware Textual text editor that never loses text.

It autosaves every change atomically, keeps its session under
``$XDG_STATE_HOME/hanotepad/``, and reloads its file when it changes on disk.
"""

__version__ = "0.1.0"
