"""The HA Notepad demo: the narrator of the walkthrough and the unattended ``--auto`` run."""
