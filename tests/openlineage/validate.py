"""Checks OpenLineage events with the OpenLineage project's own Python client (openlineage-python,
pinned in scripts/install.sh): each event of each NDJSON file given is rebuilt from the client's
classes (which check required fields, the run id's UUID and the event time) and written back by
the client's Serde; the result must be the event as written, so that no field is unknown to the
spec, missing from it, or under another schema URL. Prints the number of events checked."""

import json
import sys

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState, set_producer
from openlineage.client.facet_v2 import job_type_job, schema_dataset, sql_job
from openlineage.client.serde import Serde

JOB_FACETS = {
    "jobType": lambda f: job_type_job.JobTypeJobFacet(
        processingType=f["processingType"], integration=f["integration"], jobType=f.get("jobType")),
    "sql": lambda f: sql_job.SQLJobFacet(query=f["query"], dialect=f.get("dialect")),
}


def schema_facet(f):
    fields = [schema_dataset.SchemaDatasetFacetFields(name=c["name"], type=c.get("type"), fields=c.get("fields"))
              for c in f["fields"]]
    return schema_dataset.SchemaDatasetFacet(fields=fields)


def rebuilt(event):
    set_producer(event["producer"])
    job = event["job"]
    return RunEvent(
        eventType=RunState[event["eventType"]],
        eventTime=event["eventTime"],
        producer=event["producer"],
        run=Run(runId=event["run"]["runId"]),
        job=Job(namespace=job["namespace"], name=job["name"],
                facets={k: JOB_FACETS[k](v) for k, v in job.get("facets", {}).items()}),
        inputs=[InputDataset(namespace=i["namespace"], name=i["name"]) for i in event["inputs"]],
        outputs=[OutputDataset(namespace=o["namespace"], name=o["name"],
                               facets={"schema": schema_facet(o["facets"]["schema"])}) for o in event["outputs"]],
    )


def main():
    checked = 0
    for path in sys.argv[1:]:
        for number, line in enumerate(open(path, encoding="utf-8"), 1):
            event = json.loads(line)
            back = Serde.to_dict(rebuilt(event))
            if back != event:
                sys.exit(f"{path}:{number}: the client writes this event otherwise:\n{json.dumps(back, sort_keys=True)}\n"
                         f"written:\n{json.dumps(event, sort_keys=True)}")
            checked += 1
    print(checked)


main()
