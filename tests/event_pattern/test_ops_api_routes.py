"""The ops API's routes in template.yaml are exactly the operations of docs/openapi.json (which
a Rust test keeps equal to the routes the code serves), each IAM-authorised: a route missing
from the template would answer API Gateway's 404 in production only."""

from __future__ import annotations

import json
import unittest

from test_event_pattern import ROOT, load_template

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


class OpsApiRoutes(unittest.TestCase):
    def test_template_routes_equal_the_openapi_operations(self) -> None:
        document = json.loads((ROOT / "docs" / "openapi.json").read_text())
        documented = {
            (method.upper(), path)
            for path, item in document["paths"].items()
            for method in item
            if method in METHODS
        }
        function = load_template()["Resources"]["OpsApiFunction"]["Properties"]
        routed = set()
        for name, event in function["Events"].items():
            properties = event["Properties"]
            self.assertEqual(event["Type"], "HttpApi", name)
            self.assertEqual(properties["ApiId"], {"Ref": "OpsApi"}, name)
            # No per-route override of the API's default AWS_IAM authorizer.
            self.assertNotIn("Auth", properties, name)
            routed.add((properties["Method"].upper(), properties["Path"]))
        self.assertEqual(routed, documented)

    def test_the_api_authorises_every_route_with_iam(self) -> None:
        auth = load_template()["Resources"]["OpsApi"]["Properties"]["Auth"]
        self.assertEqual(auth["DefaultAuthorizer"], "AWS_IAM")


if __name__ == "__main__":
    unittest.main()
