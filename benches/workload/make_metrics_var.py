"""Writes N variants of metrics.pb's 100 points whose timestamps advance 10 ms per body (delta sums and
histograms cover their own 10 ms; gauge values move), as an SDK exporting often would: the same series
recur in a batch, but no point is a re-sent copy of another. usage: make_metrics_var.py OUTDIR N"""
import os, sys
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

here = os.path.dirname(os.path.abspath(__file__))  # benches/workload
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
base = ExportMetricsServiceRequest()
base.ParseFromString(open(os.path.join(here, "metrics.pb"), "rb").read())
for k in range(n):
    m = ExportMetricsServiceRequest()
    m.CopyFrom(base)
    for rm in m.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                for p in getattr(metric, kind).data_points:
                    t = p.time_unix_nano + k * 10_000_000
                    p.time_unix_nano = t
                    if kind == "gauge":
                        p.as_double = p.as_double + (k % 7)
                    else:
                        p.start_time_unix_nano = t - 10_000_000
                        if kind == "sum":
                            p.as_int = p.as_int + (k % 3)
    open(os.path.join(out, f"{k:04d}.pb"), "wb").write(m.SerializeToString())
