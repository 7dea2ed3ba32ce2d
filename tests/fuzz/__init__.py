"""Property-based fuzzing (hypothesis) of every input PutDesk reads: Barchart CSV rows and
files, scenario files, settings values and command-line arguments. Bad input must give a
named error and never a traceback; good input next to it must come through whole."""

from hypothesis import HealthCheck, settings

#: The base of every fuzz test's settings: the same examples on every run (derandomize,
#: no example database) so CI is deterministic, and no deadline on a shared CPU.
FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
