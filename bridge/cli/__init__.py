"""The ``stemstream`` command line: one module per subcommand."""
