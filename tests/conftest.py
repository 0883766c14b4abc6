"""Test-wide settings: a fixed thread count, so that results are bit-for-bit repeatable
whatever the machine's load (torch sums in a thread-dependent order) and the suite does not
collapse when other processes use the cores. The adaptive policy has its own tests."""

import os

os.environ.setdefault("RDLENS_THREADS", "1")

# hermetic data: the image data sets are looked for in an empty folder unless a test says otherwise
if "RDLENS_DATA" not in os.environ:
    import tempfile

    os.environ["RDLENS_DATA"] = tempfile.mkdtemp(prefix="rdlens-test-data-")
