"""Entry points only: each script parses its flags, calls the library (atommem_env, agents) and prints."""
