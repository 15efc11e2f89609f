"""`python -m services.message_sandbox --help`: an SMTP server and SMS and push gateways."""

from services.message_sandbox.cli import main

raise SystemExit(main())
