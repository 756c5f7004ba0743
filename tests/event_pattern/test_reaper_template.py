"""The batch reaper's part of template.yaml, evaluated for several parameter values.

cfn-lint and `sam validate` check that the template is well formed; they do not evaluate the
conditions. The least-privilege promise (ListProjects only when a ProjectNamePatterns entry has
a wildcard) and the safe default (schedule DISABLED) rest on intrinsic-function tricks, so this
test evaluates the conditions and the reaper's resources the way CloudFormation would, with the
helpers of test_event_pattern.py, and looks at the result.

Run with:  .venv/bin/python -m unittest discover -s tests/event_pattern  (`make event-pattern`).
"""

from __future__ import annotations

import unittest
from typing import Any

from test_event_pattern import PSEUDO, load_template, parameter_values

FUNCTION = "BatchReaperFunction"
ROLE = "BatchReaperFunctionRole"
SCHEDULE = "BatchReaperSchedule"
INVOKE_CONFIG = "BatchReaperEventInvokeConfig"
NO_VALUE = object()


class Stack:
    """The template under one set of parameter values: conditions and intrinsic functions
    evaluated (GetAtt and Ref to a resource become placeholders naming it)."""

    def __init__(self, overrides: dict[str, str] | None = None) -> None:
        self.template = load_template()
        self.values = parameter_values(self.template, overrides or {})
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = self._truth(self.template["Conditions"][name])
        return self._conditions[name]

    def _truth(self, node: Any) -> bool:
        (key, arg), = node.items()
        if key == "Fn::Equals":
            left, right = (self.resolve(item) for item in arg)
            return left == right
        if key == "Fn::Not":
            return not self._truth(arg[0])
        if key == "Fn::Or":
            return any(self._truth(item) for item in arg)
        if key == "Fn::And":
            return all(self._truth(item) for item in arg)
        if key == "Condition":
            return self.condition(arg)
        raise ValueError(f"{key} is not a condition function")

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return NO_VALUE
                if arg in self.values:
                    return self.values[arg]
                if arg in PSEUDO:
                    return PSEUDO[arg]
                if arg in self.template["Resources"]:
                    return f"<{arg}>"
                raise ValueError(f"Ref to unknown {arg!r}")
            if key == "Fn::GetAtt":
                return f"<{arg[0]}.{arg[1]}>"
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Join":
                delimiter, items = arg
                return delimiter.join(self.resolve(items))
            if key == "Fn::Split":
                delimiter, source = arg
                return self.resolve(source).split(delimiter)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Sub":
                return self._substitute(arg)
            if key.startswith("Fn::") or key == "Condition":
                raise ValueError(f"{key} is not evaluated by this test")
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def _substitute(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {name: self.resolve(value) for name, value in variables.items()}
        out, i = [], 0
        while (start := text.find("${", i)) >= 0:
            end = text.index("}", start)
            name = text[start + 2 : end]
            out.append(text[i:start])
            if name.startswith("!"):
                out.append("${" + name[1:] + "}")
            elif name in local:
                out.append(str(local[name]))
            elif "." in name:
                out.append(str(self.resolve({"Fn::GetAtt": name.split(".", 1)})))
            else:
                out.append(str(self.resolve({"Ref": name})))
            i = end + 1
        out.append(text[i:])
        return "".join(out)

    def resource(self, name: str) -> dict[str, Any]:
        return self.resolve(self.template["Resources"][name])

    def reaper_statements(self) -> list[dict[str, Any]]:
        (policy,) = self.resource(ROLE)["Properties"]["Policies"]
        return policy["PolicyDocument"]["Statement"]


def actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def resources(statement: dict[str, Any]) -> list[str]:
    resource = statement["Resource"]
    return [resource] if isinstance(resource, str) else resource


def project_arn(pattern: str) -> str:
    return f"arn:*:codebuild:${{aws:RequestedRegion}}:${{aws:PrincipalAccount}}:project/{pattern}"


class ReaperPermissionsTest(unittest.TestCase):
    def granted(self, patterns: str) -> dict[str, list[str]]:
        """Action -> resources the reaper's role is granted for these ProjectNamePatterns."""
        out: dict[str, list[str]] = {}
        for statement in Stack({"ProjectNamePatterns": patterns}).reaper_statements():
            self.assertEqual(statement["Effect"], "Allow")
            for action in actions(statement):
                out.setdefault(action, []).extend(resources(statement))
        return out

    def test_list_projects_only_when_a_pattern_has_a_wildcard(self) -> None:
        cases = {
            "*": True,
            "app-*,infra-ci": True,
            "infra-c?": True,
            "web, api-prod": False,
            "web": False,
        }
        for patterns, wanted in cases.items():
            with self.subTest(patterns=patterns):
                stack = Stack({"ProjectNamePatterns": patterns})
                self.assertEqual(stack.condition("ProjectPatternsHaveWildcard"), wanted)
                granted = self.granted(patterns)
                if wanted:
                    self.assertEqual(granted["codebuild:ListProjects"], ["*"])
                else:
                    self.assertNotIn("codebuild:ListProjects", granted)

    def test_batch_actions_only_on_the_allowed_projects(self) -> None:
        granted = self.granted("app-*, infra-ci")
        for action in (
            "codebuild:ListBuildBatchesForProject",
            "codebuild:BatchGetBuildBatches",
            "codebuild:StopBuildBatch",
        ):
            with self.subTest(action=action):
                self.assertEqual(granted[action], [project_arn("app-*"), project_arn("infra-ci")])
        codebuild = sorted(a for a in granted if a.startswith("codebuild:"))
        self.assertEqual(
            codebuild,
            [
                "codebuild:BatchGetBuildBatches",
                "codebuild:ListBuildBatchesForProject",
                "codebuild:ListProjects",
                "codebuild:StopBuildBatch",
            ],
        )

    def test_nothing_else_on_every_resource(self) -> None:
        for action, arns in self.granted("*").items():
            if action != "codebuild:ListProjects":
                with self.subTest(action=action):
                    self.assertNotIn("*", arns)

    def test_reads_the_config_where_auto_retry_does(self) -> None:
        for uri, action, arn in (
            ("", "ssm:GetParameter",
             "arn:aws:ssm:us-east-1:123456789012:parameter/codebuild-autopilot/codebuild-autopilot/config"),
            ("ssm:/team/autopilot", "ssm:GetParameter",
             "arn:aws:ssm:us-east-1:123456789012:parameter/team/autopilot"),
            ("s3://bucket/autopilot.toml", "s3:GetObject", "arn:aws:s3:::bucket/autopilot.toml"),
        ):
            with self.subTest(uri=uri):
                stack = Stack({"ConfigUri": uri})
                granted = [
                    (a, r) for s in stack.reaper_statements() for a in actions(s)
                    for r in resources(s) if a.startswith(("ssm:", "s3:"))
                ]
                self.assertEqual(granted, [(action, arn)])
                env = stack.resource(FUNCTION)["Properties"]["Environment"]["Variables"]
                retry_env = stack.resource("AutoRetryFunction")["Properties"]["Environment"]["Variables"]
                self.assertEqual(env["AUTOPILOT_CONFIG_URI"], retry_env["AUTOPILOT_CONFIG_URI"])


class ReaperFunctionTest(unittest.TestCase):
    def test_schedule_is_disabled_unless_enabled(self) -> None:
        off = Stack().resource(SCHEDULE)["Properties"]
        self.assertEqual(off["State"], "DISABLED")
        self.assertEqual(off["ScheduleExpression"], "rate(5 minutes)")
        self.assertEqual(off["Targets"][0]["Arn"], f"<{FUNCTION}.Arn>")
        on = Stack({"ReaperEnabled": "true", "ReaperSchedule": "rate(10 minutes)"})
        self.assertEqual(on.resource(SCHEDULE)["Properties"]["State"], "ENABLED")
        self.assertEqual(
            on.resource(SCHEDULE)["Properties"]["ScheduleExpression"], "rate(10 minutes)"
        )

    def test_one_sweep_at_a_time_with_the_configured_timeout_and_environment(self) -> None:
        stack = Stack({
            "ReaperTimeout": "300",
            "ReaperConcurrency": "8",
            "ProjectNamePatterns": "app-*,infra-ci",
            "DryRun": "true",
        })
        properties = stack.resource(FUNCTION)["Properties"]
        self.assertEqual(properties["ReservedConcurrentExecutions"], 1)
        self.assertEqual(properties["Timeout"], "300")
        self.assertEqual(stack.resource(ROLE)["Type"], "AWS::IAM::Role")
        self.assertEqual(properties["Role"], f"<{ROLE}.Arn>")
        env = properties["Environment"]["Variables"]
        self.assertEqual(
            {k: v for k, v in env.items() if k != "AUTOPILOT_CONFIG_URI"},
            {
                "AUTOPILOT_CONFIG_TTL_SECONDS": "60",
                "AUTOPILOT_PROJECT_PATTERNS": "app-*,infra-ci",
                "AUTOPILOT_DRY_RUN": "true",
                "AUTOPILOT_REAPER_CONCURRENCY": "8",
            },
        )
        self.assertEqual(Stack().resource(FUNCTION)["Properties"]["Timeout"], "120")

    def test_failures_end_in_the_dead_letter_queue(self) -> None:
        stack = Stack()
        invoke = stack.resource(INVOKE_CONFIG)["Properties"]
        self.assertEqual(invoke["FunctionName"], f"<{FUNCTION}>")
        dlq = "<DeadLetterQueue.Arn>"
        self.assertEqual(invoke["DestinationConfig"]["OnFailure"]["Destination"], dlq)
        self.assertEqual(stack.resource(SCHEDULE)["Properties"]["Targets"][0]["DeadLetterConfig"],
                         {"Arn": dlq})
        sends = [
            s for s in stack.reaper_statements()
            if "sqs:SendMessage" in actions(s) and resources(s) == [dlq]
        ]
        self.assertEqual(len(sends), 1)
        # EventBridge writes a tick it could not deliver as itself, allowed per rule.
        queue_policy = stack.resource("DeadLetterQueuePolicy")["Properties"]["PolicyDocument"]
        rule_statement = next(s for s in queue_policy["Statement"] if s["Sid"] == "RuleDeadLetters")
        self.assertIn(
            f"<{SCHEDULE}.Arn>", rule_statement["Condition"]["ArnEquals"]["aws:SourceArn"]
        )

    def test_outputs_the_function_arn(self) -> None:
        outputs = Stack().resolve(load_template()["Outputs"])
        self.assertEqual(outputs["BatchReaperFunctionArn"]["Value"], f"<{FUNCTION}.Arn>")


if __name__ == "__main__":
    unittest.main()
