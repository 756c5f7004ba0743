"""The auto-retry rule's event pattern, read from template.yaml, run through EventBridge.

EventBridge here is moto's server: its TestEventPattern is a stub that matches everything, so
the pattern is put on a real rule with an SQS target, each sample event goes in through
PutEvents, and what arrives in the queue is what matched.

The pattern in the template is built with intrinsic functions from the ProjectNamePatterns
parameter; this test evaluates them the way CloudFormation would, with the parameter's default
or with the values a test passes (see `resolve`).

Run with the project's moto venv:  .venv/bin/python -m unittest discover -s tests/event_pattern
(`make event-pattern` does; it is part of `make test`).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import tempfile
import time
import tomllib
import unittest
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TEMPLATE = ROOT / "template.yaml"
EVENTS = HERE / "events"
RULE = "AutoRetryRule"
CONFIG_PARAMETER = "AutoRetryConfigParameter"
REGION = "us-east-1"
# What the pseudo parameters resolve to; only used if the pattern ever refers to them.
PSEUDO = {
    "AWS::Region": REGION,
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "codebuild-autopilot",
    "AWS::URLSuffix": "amazonaws.com",
}
# moto imports every service on start; an upper bound on waiting, not an expectation.
MOTO_READY_DEADLINE_S = 60

# ---- template.yaml -------------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """A YAML loader that turns CloudFormation's short tags into their long form."""


def _construct_tag(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template() -> dict[str, Any]:
    with TEMPLATE.open(encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 (a SafeLoader subclass)


def parameter_values(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """Each parameter's value as `Ref` returns it: the override or the default, and a list for
    a CommaDelimitedList (CloudFormation trims the spaces around each member)."""
    values: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        raw = overrides.get(name, spec.get("Default"))
        if raw is None:
            continue
        raw = str(raw)
        if spec["Type"] == "CommaDelimitedList":
            values[name] = [member.strip() for member in raw.split(",")]
        else:
            values[name] = raw
    return values


def resolve(node: Any, values: dict[str, Any]) -> Any:
    """Evaluates the intrinsic functions the rule and the config parameter use (Ref to a
    parameter or pseudo parameter, Fn::Sub, Fn::Join, Fn::Split, Fn::Select) as CloudFormation
    does. Anything else fails loudly, so a template change this test cannot follow is noticed
    instead of silently tested wrong."""
    if isinstance(node, list):
        return [resolve(item, values) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref":
            if arg in values:
                return values[arg]
            if arg in PSEUDO:
                return PSEUDO[arg]
            raise ValueError(f"Ref to {arg!r}, which is no parameter with a value")
        if key == "Fn::Join":
            delimiter, items = arg
            return delimiter.join(resolve(items, values))
        if key == "Fn::Split":
            delimiter, source = arg
            return resolve(source, values).split(delimiter)
        if key == "Fn::Select":
            index, items = arg
            return resolve(items, values)[int(resolve(index, values))]
        if key == "Fn::Sub":
            return _substitute(arg, values)
        if key.startswith("Fn::") or key == "Condition":
            raise ValueError(f"{key} is not evaluated by this test")
    return {key: resolve(value, values) for key, value in node.items()}


def _substitute(arg: Any, values: dict[str, Any]) -> str:
    text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
    local = {name: resolve(value, values) for name, value in variables.items()}
    out, i = [], 0
    while i < len(text):
        start = text.find("${", i)
        if start < 0:
            out.append(text[i:])
            break
        out.append(text[i:start])
        end = text.index("}", start)
        name = text[start + 2 : end]
        if name.startswith("!"):
            out.append("${" + name[1:] + "}")  # ${!Literal} stays ${Literal}
        elif name in local:
            out.append(str(local[name]))
        else:
            out.append(str(resolve({"Ref": name}, values)))
        i = end + 1
    return "".join(out)


def rule_pattern(overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """The auto-retry rule's event pattern, as a JSON object, for the given parameters."""
    template = load_template()
    values = parameter_values(template, overrides or {})
    pattern = resolve(template["Resources"][RULE]["Properties"]["EventPattern"], values)
    return json.loads(pattern) if isinstance(pattern, str) else pattern


# ---- moto ----------------------------------------------------------------------------------


class MotoServer:
    """moto's standalone server on 127.0.0.1 and a free port, stopped by `stop`."""

    def __init__(self) -> None:
        binary = os.environ.get("MOTO_SERVER_BIN") or str(ROOT / ".venv" / "bin" / "moto_server")
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"moto_server not found at {binary}: run 'make venv'")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + MOTO_READY_DEADLINE_S
        while True:
            if self._process.poll() is not None:
                self._log.seek(0)
                tail = self._log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"moto_server exited with {self._process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not answer on {self.endpoint}") from None
                time.sleep(0.1)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


# ---- events --------------------------------------------------------------------------------


def sample(name: str) -> dict[str, Any]:
    with (EVENTS / f"{name}.json").open(encoding="utf-8") as f:
        return json.load(f)


SAMPLES = sorted(path.stem for path in EVENTS.glob("*.json"))


def with_changes(event: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A copy of `event` with top-level fields replaced (`detail_type` for "detail-type") and
    `project` for detail.project-name."""
    changed = json.loads(json.dumps(event))
    if "project" in top:
        changed["detail"]["project-name"] = top.pop("project")
    for key, value in top.items():
        changed[key.replace("_", "-")] = value
    return changed


def put_entry(event: dict[str, Any], bus: str) -> dict[str, Any]:
    """The PutEvents entry EventBridge would have made of this event."""
    return {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": event["resources"],
        "Time": datetime.datetime.fromisoformat(event["time"].replace("Z", "+00:00")),
        "EventBusName": bus,
    }


class EventPatternTest(unittest.TestCase):
    moto: MotoServer

    @classmethod
    def setUpClass(cls) -> None:
        cls.moto = MotoServer()
        cls.events = cls.moto.client("events")
        cls.sqs = cls.moto.client("sqs")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.moto.stop()

    def matched(self, pattern: dict[str, Any], events: dict[str, dict[str, Any]]) -> set[str]:
        """Names of the `events` that a rule with `pattern` delivers to its SQS target. Each call
        has a bus, rule and queue of its own."""
        suffix = uuid.uuid4().hex[:12]
        bus = f"pattern-test-{suffix}"
        self.events.create_event_bus(Name=bus)
        queue_url = self.sqs.create_queue(QueueName=f"pattern-test-{suffix}")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        self.events.put_rule(Name="auto-retry", EventBusName=bus, EventPattern=json.dumps(pattern))
        self.events.put_targets(
            Rule="auto-retry", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}]
        )

        names_by_id: dict[str, str] = {}
        items = list(events.items())
        for start in range(0, len(items), 10):  # PutEvents takes at most 10 entries
            chunk = items[start : start + 10]
            answer = self.events.put_events(Entries=[put_entry(e, bus) for _, e in chunk])
            self.assertEqual(answer["FailedEntryCount"], 0, answer)
            for (name, _), entry in zip(chunk, answer["Entries"]):
                names_by_id[entry["EventId"]] = name

        # moto delivers to the target inside PutEvents: everything that matched is queued now.
        arrived: list[str] = []
        while True:
            received = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
            messages = received.get("Messages", [])
            if not messages:
                break
            for message in messages:
                arrived.append(names_by_id[json.loads(message["Body"])["id"]])
                self.sqs.delete_message(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        self.assertEqual(len(arrived), len(set(arrived)), f"an event arrived twice: {arrived}")
        return set(arrived)

    def test_samples_cover_every_status(self) -> None:
        statuses = sorted(sample(name)["detail"]["build-status"] for name in SAMPLES)
        self.assertEqual(
            statuses,
            ["FAILED"] * 4 + ["FAULT", "IN_PROGRESS", "STOPPED", "SUCCEEDED", "TIMED_OUT"],
        )

    def test_default_pattern_matches_failed_fault_and_timed_out_only(self) -> None:
        provisioning = sample("build-state-failed-provisioning")
        events = {name: sample(name) for name in SAMPLES}
        events["other-source"] = with_changes(provisioning, source="com.example.ci")
        events["phase-change"] = with_changes(
            provisioning, detail_type="CodeBuild Build Phase Change"
        )

        self.assertEqual(
            self.matched(rule_pattern(), events),
            {
                "build-state-failed-download-source",
                "build-state-failed-provisioning",
                "build-state-failed-tests",
                "build-state-failed-yaml",
                "build-state-fault",
                "build-state-timed-out",
            },
        )

    def test_project_name_patterns_narrow_the_rule(self) -> None:
        pattern = rule_pattern({"ProjectNamePatterns": "app-*, infra-c?"})
        failed = sample("build-state-failed-provisioning")
        stopped = sample("build-state-stopped")
        events = {
            "app-web": with_changes(failed, project="app-web"),
            "app-": with_changes(failed, project="app-"),
            # IAM's "?" has no EventBridge equivalent and becomes "*": wider, never narrower.
            "infra-ci": with_changes(failed, project="infra-ci"),
            "infra-cd-long": with_changes(failed, project="infra-cd-long"),
            "my-sample-project": failed,
            "xapp-web": with_changes(failed, project="xapp-web"),
            "infra-ops": with_changes(failed, project="infra-ops"),
            "app-web-stopped": with_changes(stopped, project="app-web"),
        }

        self.assertEqual(
            self.matched(pattern, events), {"app-web", "app-", "infra-ci", "infra-cd-long"}
        )


class DefaultConfigTest(unittest.TestCase):
    """The SSM parameter the stack creates when ConfigUri is empty."""

    def config(self, overrides: dict[str, str]) -> dict[str, Any]:
        template = load_template()
        value = resolve(
            template["Resources"][CONFIG_PARAMETER]["Properties"]["Value"],
            parameter_values(template, overrides),
        )
        return tomllib.loads(value)

    def test_default_config_is_dry_run_for_every_allowed_project(self) -> None:
        config = self.config({"ProjectNamePatterns": "app-*,infra-ci"})
        self.assertEqual(config["defaults"], {"dry_run": True})
        self.assertEqual(config["projects"], [{"name": "app-*"}, {"name": "infra-ci"}])

    def test_default_config_with_default_patterns(self) -> None:
        self.assertEqual(self.config({})["projects"], [{"name": "*"}])


if __name__ == "__main__":
    unittest.main()
