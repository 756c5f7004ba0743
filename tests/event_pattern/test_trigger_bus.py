"""The batch trigger's part of template.yaml: its bus, rules, policy and dead-letter wiring.

The promise tested against EventBridge (moto's server): an "Autopilot Start Batch" event put on
the DEFAULT bus reaches no rule of the template, while the same event on the trigger bus reaches
the batch trigger's rule only. Every rule of the template that has an event pattern is created
in moto on its own bus, with an SQS queue standing in for its target (moto's TestEventPattern is
a stub that matches anything, so only delivery shows what matched).

The example schedule cannot fire in moto, so its input transformer is put on a stand-in rule and
a scheduled event run through it: what comes out must be the custom events' shape (the sample
infra/events/batch-trigger-scheduled.json, which the Rust tests feed the function).

The rest (bus policy, schedule state, least privilege, DLQ wiring) is the template evaluated
the way CloudFormation would, with test_reaper_template's `Stack`.

Run with:  .venv/bin/python -m unittest discover -s tests/event_pattern  (`make event-pattern`).
"""

from __future__ import annotations

import json
import unittest
import uuid
from typing import Any

from test_event_pattern import ROOT, MotoServer, put_entry
from test_reaper_template import Stack, actions, resources

FUNCTION = "BatchTriggerFunction"
ROLE = "BatchTriggerFunctionRole"
BUS = "TriggerEventBus"
RULE = "BatchTriggerRule"
SCHEDULE = "BatchTriggerSchedule"
DLQ = "TriggerDeadLetterQueue"
EVENTS = ROOT / "infra" / "events"
START_DETAIL_TYPE = "Autopilot Start Batch"


def sample(name: str) -> dict[str, Any]:
    with (EVENTS / name).open(encoding="utf-8") as f:
        return json.load(f)


def bus_name(stack: Stack) -> str:
    return stack.resource(BUS)["Properties"]["Name"]


def pattern_rules(stack: Stack) -> dict[str, dict[str, Any]]:
    """Every rule of the template that matches events (not schedules): name -> its properties."""
    return {
        name: stack.resource(name)["Properties"]
        for name, resource in stack.template["Resources"].items()
        if resource["Type"] == "AWS::Events::Rule"
        and "EventPattern" in resource.get("Properties", {})
    }


def targets_function(properties: dict[str, Any]) -> bool:
    return any(t["Arn"] == f"<{FUNCTION}.Arn>" for t in properties.get("Targets", []))


class TriggerBusDeliveryTest(unittest.TestCase):
    """The template's event rules, deployed in moto, fed start requests on both buses."""

    moto: MotoServer

    @classmethod
    def setUpClass(cls) -> None:
        cls.moto = MotoServer()
        cls.events = cls.moto.client("events")
        cls.sqs = cls.moto.client("sqs")
        cls.stack = Stack()
        cls.bus = bus_name(cls.stack)
        cls.events.create_event_bus(Name=cls.bus)
        # Rule name -> the queue standing in for its targets.
        cls.queues: dict[str, str] = {}
        for name, properties in pattern_rules(cls.stack).items():
            bus = properties.get("EventBusName", "default")
            if bus == f"<{BUS}>":
                bus = cls.bus
            pattern = properties["EventPattern"]
            if isinstance(pattern, str):
                pattern = json.loads(pattern)
            queue_url = cls.sqs.create_queue(QueueName=f"{name}-{uuid.uuid4().hex[:8]}")["QueueUrl"]
            queue_arn = cls.sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            cls.events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))
            cls.events.put_targets(
                Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}]
            )
            cls.queues[name] = queue_url

    @classmethod
    def tearDownClass(cls) -> None:
        cls.moto.stop()

    def put(self, event: dict[str, Any], bus: str) -> str:
        answer = self.events.put_events(Entries=[put_entry(event, bus)])
        self.assertEqual(answer["FailedEntryCount"], 0, answer)
        return answer["Entries"][0]["EventId"]

    def delivered(self) -> dict[str, list[dict[str, Any]]]:
        """What each rule's queue received since the last look (moto delivers inside PutEvents)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for rule, queue_url in self.queues.items():
            while True:
                messages = self.sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=10
                ).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    out.setdefault(rule, []).append(json.loads(message["Body"]))
                    self.sqs.delete_message(
                        QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )
        return out

    def test_the_template_has_the_rules_this_test_deploys(self) -> None:
        self.assertIn(RULE, self.queues)
        self.assertIn("AutoRetryRule", self.queues)

    def test_a_start_request_on_the_default_bus_reaches_no_rule(self) -> None:
        for name in ("batch-trigger-custom.json", "batch-trigger-scheduled.json"):
            with self.subTest(event=name):
                self.put(sample(name), "default")
                self.assertEqual(self.delivered(), {})

    def test_a_start_request_on_the_trigger_bus_reaches_the_trigger_rule_only(self) -> None:
        custom = sample("batch-trigger-custom.json")
        event_id = self.put(custom, self.bus)

        delivered = self.delivered()

        self.assertEqual(list(delivered), [RULE])
        (event,) = delivered[RULE]
        self.assertEqual(event["id"], event_id)
        self.assertEqual(event["detail-type"], START_DETAIL_TYPE)
        self.assertEqual(event["detail"], custom["detail"])

    def test_other_events_on_the_trigger_bus_reach_nothing(self) -> None:
        other = dict(sample("batch-trigger-custom.json"), **{"detail-type": "Autopilot Stop Batch"})
        failed_build = json.loads(
            (ROOT / "tests/event_pattern/events/build-state-failed-tests.json").read_text()
        )
        self.put(other, self.bus)
        self.put(failed_build, self.bus)
        self.assertEqual(self.delivered(), {})

    def test_the_function_is_reached_from_the_trigger_bus_and_its_schedule_only(self) -> None:
        rules = {
            name: resource["Properties"]
            for name, resource in self.stack.template["Resources"].items()
            if resource["Type"] == "AWS::Events::Rule"
        }
        reaching = {
            name: self.stack.resolve(properties)
            for name, properties in rules.items()
            if targets_function(self.stack.resolve(properties))
        }
        self.assertEqual(set(reaching), {RULE, SCHEDULE})
        self.assertEqual(reaching[RULE]["EventBusName"], f"<{BUS}>")
        self.assertNotIn("EventPattern", reaching[SCHEDULE])
        # Only the two rules may invoke it.
        permissions = {
            resource["Properties"]["SourceArn"]
            for resource in (
                self.stack.resolve(r) for r in self.stack.template["Resources"].values()
            )
            if resource["Type"] == "AWS::Lambda::Permission"
            and resource["Properties"]["FunctionName"] == f"<{FUNCTION}>"
        }
        self.assertEqual(permissions, {f"<{RULE}.Arn>", f"<{SCHEDULE}.Arn>"})


class ScheduleTransformTest(unittest.TestCase):
    """The example schedule's input transformer, run by EventBridge (moto)."""

    def test_a_tick_becomes_the_custom_events_shape(self) -> None:
        stack = Stack({"TriggerScheduleProject": "nightly"})
        (target,) = stack.resource(SCHEDULE)["Properties"]["Targets"]
        self.assertEqual(target["Arn"], f"<{FUNCTION}.Arn>")
        transformer = target["InputTransformer"]

        moto = MotoServer()
        try:
            events, sqs = moto.client("events"), moto.client("sqs")
            events.create_event_bus(Name="ticks")
            queue_url = sqs.create_queue(QueueName="ticks")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            # A stand-in for the schedule: a rule matching a hand-made tick, the same transformer.
            events.put_rule(
                Name="tick", EventBusName="ticks",
                EventPattern=json.dumps({"detail-type": ["Scheduled Event"]}),
            )
            events.put_targets(
                Rule="tick", EventBusName="ticks",
                Targets=[{"Id": "queue", "Arn": queue_arn, "InputTransformer": transformer}],
            )
            tick = dict(sample("batch-trigger-scheduled.json"),
                        **{"detail-type": "Scheduled Event", "source": "test.schedule",
                           "detail": {}})
            answer = events.put_events(Entries=[put_entry(tick, "ticks")])
            tick_id = answer["Entries"][0]["EventId"]
            (message,) = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
        finally:
            moto.stop()

        transformed = json.loads(message["Body"])
        expected = sample("batch-trigger-scheduled.json")
        expected["id"] = tick_id
        expected["detail"]["project"] = "nightly"
        self.assertEqual(transformed, expected)


class TriggerTemplateTest(unittest.TestCase):
    def test_the_schedule_is_disabled_unless_enabled_with_a_project(self) -> None:
        cases = [
            ({}, "DISABLED"),
            ({"TriggerScheduleEnabled": "true"}, "DISABLED"),
            ({"TriggerScheduleProject": "nightly"}, "DISABLED"),
            ({"TriggerScheduleEnabled": "true", "TriggerScheduleProject": "nightly"}, "ENABLED"),
        ]
        for overrides, state in cases:
            with self.subTest(overrides=overrides):
                properties = Stack(overrides).resource(SCHEDULE)["Properties"]
                self.assertEqual(properties["State"], state)
        properties = Stack({"TriggerSchedule": "rate(1 day)"}).resource(SCHEDULE)["Properties"]
        self.assertEqual(properties["ScheduleExpression"], "rate(1 day)")

    def test_by_default_the_bus_policy_leaves_it_to_this_accounts_iam(self) -> None:
        stack = Stack()
        statement = stack.resource("TriggerEventBusPolicy")["Properties"]["Statement"]
        self.assertEqual(statement["Effect"], "Allow")
        self.assertEqual(statement["Action"], "events:PutEvents")
        self.assertEqual(statement["Resource"], f"<{BUS}.Arn>")
        self.assertEqual(statement["Principal"], {"AWS": "arn:aws:iam::123456789012:root"})
        self.assertFalse(stack.condition("HasTriggerPutEventsPrincipals"))

    def test_named_principals_may_put_and_everyone_else_is_denied(self) -> None:
        principals = [
            "arn:aws:iam::123456789012:role/release-train",
            "arn:aws:iam::210987654321:role/ci",
        ]
        stack = Stack({"TriggerPutEventsPrincipals": ",".join(principals)})
        self.assertTrue(stack.condition("HasTriggerPutEventsPrincipals"))
        allow = stack.resource("TriggerEventBusPolicy")["Properties"]
        deny = stack.resource("TriggerEventBusDenyOthers")["Properties"]
        self.assertEqual(allow["EventBusName"], f"<{BUS}>")
        self.assertEqual(deny["EventBusName"], f"<{BUS}>")
        self.assertEqual(allow["Statement"]["Principal"], {"AWS": principals})
        self.assertEqual(deny["Statement"]["Effect"], "Deny")
        self.assertEqual(deny["Statement"]["Principal"], "*")
        self.assertEqual(deny["Statement"]["Action"], "events:PutEvents")
        self.assertEqual(
            deny["Statement"]["Condition"], {"ArnNotEquals": {"aws:PrincipalArn": principals}}
        )
        self.assertNotEqual(allow["StatementId"], deny["StatementId"])

    def test_the_role_may_start_batches_of_the_allowed_projects_and_nothing_more(self) -> None:
        stack = Stack({"ProjectNamePatterns": "app-*,infra-ci"})
        (policy,) = stack.resource(ROLE)["Properties"]["Policies"]
        granted: dict[str, list[str]] = {}
        for statement in policy["PolicyDocument"]["Statement"]:
            self.assertEqual(statement["Effect"], "Allow")
            for action in actions(statement):
                granted.setdefault(action, []).extend(resources(statement))
        project = "arn:*:codebuild:${aws:RequestedRegion}:${aws:PrincipalAccount}:project/"
        self.assertEqual(
            granted["codebuild:StartBuildBatch"], [project + "app-*", project + "infra-ci"]
        )
        self.assertEqual(
            sorted(a for a in granted if a.startswith("codebuild:")), ["codebuild:StartBuildBatch"]
        )
        self.assertEqual(granted["sqs:SendMessage"], [f"<{DLQ}.Arn>"])
        for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                       "dynamodb:DeleteItem"):
            self.assertEqual(granted[action], ["<LedgerTable.Arn>"], action)
        for action, arns in granted.items():
            with self.subTest(action=action):
                self.assertNotIn("*", arns)

    def test_what_does_not_start_ends_in_the_trigger_dead_letter_queue(self) -> None:
        stack = Stack({"TriggerScheduleProject": "nightly"})
        dlq = f"<{DLQ}.Arn>"
        invoke = stack.resource("BatchTriggerEventInvokeConfig")["Properties"]
        self.assertEqual(invoke["FunctionName"], f"<{FUNCTION}>")
        self.assertEqual(invoke["MaximumRetryAttempts"], 2)
        self.assertEqual(invoke["DestinationConfig"]["OnFailure"]["Destination"], dlq)
        for rule in (RULE, SCHEDULE):
            with self.subTest(rule=rule):
                (target,) = stack.resource(rule)["Properties"]["Targets"]
                self.assertEqual(target["DeadLetterConfig"], {"Arn": dlq})
                self.assertIn("RetryPolicy", target)
        queue_policy = stack.resource("TriggerDeadLetterQueuePolicy")["Properties"]
        (statement,) = queue_policy["PolicyDocument"]["Statement"]
        self.assertEqual(statement["Principal"], {"Service": "events.amazonaws.com"})
        self.assertEqual(
            statement["Condition"]["ArnEquals"]["aws:SourceArn"],
            [f"<{RULE}.Arn>", f"<{SCHEDULE}.Arn>"],
        )
        alarm = stack.resource("TriggerDeadLetterQueueAlarm")["Properties"]
        self.assertEqual(alarm["Dimensions"][0]["Value"], f"<{DLQ}.QueueName>")

    def test_the_function_reads_the_settings_the_rust_code_reads(self) -> None:
        stack = Stack({"DryRun": "true", "ProjectNamePatterns": "app-*"})
        env = stack.resource(FUNCTION)["Properties"]["Environment"]["Variables"]
        retry_env = stack.resource("AutoRetryFunction")["Properties"]["Environment"]["Variables"]
        self.assertEqual(
            set(env),
            {"AUTOPILOT_CONFIG_URI", "AUTOPILOT_CONFIG_TTL_SECONDS", "AUTOPILOT_PROJECT_PATTERNS",
             "AUTOPILOT_LEDGER_TABLE", "AUTOPILOT_DRY_RUN"},
        )
        for name in env:
            self.assertEqual(env[name], retry_env[name], name)
        settings = (ROOT / "shared/src/trigger/settings.rs").read_text()
        for name in env:
            self.assertIn(f"`{name}`", settings, name)

    def test_outputs_name_the_bus(self) -> None:
        stack = Stack()
        names = ("TriggerEventBusName", "TriggerEventBusArn", "BatchTriggerFunctionArn")
        outputs = {name: stack.resolve(stack.template["Outputs"][name]) for name in names}
        self.assertEqual(outputs["TriggerEventBusName"]["Value"], f"<{BUS}>")
        self.assertEqual(outputs["TriggerEventBusArn"]["Value"], f"<{BUS}.Arn>")
        self.assertEqual(outputs["BatchTriggerFunctionArn"]["Value"], f"<{FUNCTION}.Arn>")


if __name__ == "__main__":
    unittest.main()
