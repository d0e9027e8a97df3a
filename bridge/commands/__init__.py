"""One module per ``stemstream`` subcommand: ``register(subparsers)`` and ``run(args)``."""
