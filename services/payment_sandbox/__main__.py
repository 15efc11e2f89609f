"""`python -m services.payment_sandbox --help`: a card processor's sandbox."""

from services.payment_sandbox.cli import main

raise SystemExit(main())
