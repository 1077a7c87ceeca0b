"""The paper's experiments and the command-line subcommands that run them."""
