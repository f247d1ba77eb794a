"""One module per subcommand; each defines ``add_parser(subparsers)`` and keeps its
heavy imports inside the function that runs the job."""
