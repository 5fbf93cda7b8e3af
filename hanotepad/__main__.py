def main() -> None:
    raise SystemExit("hanotepad: not built yet")
