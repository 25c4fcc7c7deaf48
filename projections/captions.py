"""What the read side's reports say about how they count, for their tables and for the
command line's help (a module of text alone: `--help` imports nothing else of the read
side)."""

#: What `report` counts, and over which days (its --help and its table's caption).
SCORECARD_CAPTION = (
    "Counts are by the business day of each event: a window counts what happened in it, "
    "so a case opened before the window and decided in it counts as decided but not as "
    "opened.")
