def main() -> None:
    raise SystemExit("hacluster: not built yet")
