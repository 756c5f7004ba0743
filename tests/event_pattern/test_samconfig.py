"""infra/samconfig.toml's parameter overrides name template parameters that exist, with values
they allow: `sam deploy` would otherwise stop at a renamed or misspelt parameter."""

from __future__ import annotations

import shlex
import tomllib
import unittest

from test_event_pattern import ROOT, load_template


def overrides(environment: str) -> dict[str, str]:
    config = tomllib.loads((ROOT / "infra" / "samconfig.toml").read_text())
    text = config[environment]["deploy"]["parameters"]["parameter_overrides"]
    return dict(pair.split("=", 1) for pair in shlex.split(text))


class SamconfigOverrides(unittest.TestCase):
    def test_every_override_is_a_template_parameter_with_an_allowed_value(self) -> None:
        parameters = load_template()["Parameters"]
        for environment in ("default", "prod"):
            for name, value in overrides(environment).items():
                with self.subTest(environment=environment, parameter=name):
                    self.assertIn(name, parameters)
                    allowed = parameters[name].get("AllowedValues")
                    if allowed is not None:
                        self.assertIn(value, [str(v) for v in allowed])


if __name__ == "__main__":
    unittest.main()
