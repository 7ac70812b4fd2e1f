"""Board configs on the host: load, validate (schema + board and role rules), merge secrets."""
from host_tools.config.secrets import Secrets, SecretsError
from host_tools.config.validate import ConfigError, Problem, check, load

__all__ = ["ConfigError", "Problem", "Secrets", "SecretsError", "check", "load"]
