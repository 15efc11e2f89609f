"""`python -m services.simulator --help`: simulated devices against an adapter."""

from services.simulator.cli import main

raise SystemExit(main())
