"""Colours for the console's Rich text, as hex values chosen to land on the intended
colour in every colour system: truecolor, 256 colours, and the 16 of TERM=screen or a
Linux console (the comments say which of the 16).

Named colours ("red", "yellow") are not used: Textual turns them into its theme's RGB,
and a 16-colour terminal then gets the nearest standard colour — "yellow" became bright
red and "red" magenta. Every state is also a word (HALTED, WARN, FAIL, MARGIN CALL ...):
colour is never the only signal."""

RED = "#ff5f5f"  # bright red (91)
GREEN = "#5fd75f"  # bright green (92)
YELLOW = "#ffd75f"  # bright yellow (93)
CYAN = "#5fd7d7"  # bright cyan (96)
BOLD_RED = f"bold {RED}"
BOLD_GREEN = f"bold {GREEN}"
BOLD_YELLOW = f"bold {YELLOW}"
BOLD_CYAN = f"bold {CYAN}"
#: Badges: dark or light text on a solid colour.
ON_RED = "bold #ffffff on #c00000"  # white on red (41)
ON_YELLOW = "bold #000000 on #ffd700"  # black on bright yellow (103)
ON_GREEN = "bold #000000 on #00af00"  # black on green (42)
