"""`python -m benchmarks.router`: the router benchmark alone."""

from benchmarks.router.run import main

raise SystemExit(main())
