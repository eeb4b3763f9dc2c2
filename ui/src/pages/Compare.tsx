import { useQueries } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { api, unwrap } from "../api/client";
import { MetricChart } from "../components/MetricChart";
import { Card, ErrorBox, fmt } from "../components/ui";
import { differingKeys } from "../lib/series";
import { useSeries } from "../lib/useSeries";

const MAX_COMPARED = 50;

export default function ComparePage() {
  const { user = "", project = "" } = useParams();
  const [params] = useSearchParams();
  const ids = (params.get("ids") ?? "")
    .split(",")
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0)
    .slice(0, MAX_COMPARED);
  const [log, setLog] = useState(false);
  const [smoothing, setSmoothing] = useState(0);
  const details = useQueries({
    queries: ids.map((id) => ({
      queryKey: ["experiments", user, project, "detail", id],
      queryFn: () => unwrap(api.GET("/api/v1/{username}/{project}/experiments/{exp_id}", { params: { path: { username: user, project, exp_id: id } } })),
    })),
  });
  const series = useSeries(user, project, ids, { points: 1000 });
  const error = [...details, ...series].find((q) => q.error)?.error;
  const experiments = details.map((d) => d.data).filter((d) => d !== undefined);
  const decl = experiments.map((e) => (e.declarations ?? {}) as Record<string, unknown>);
  const differing = differingKeys(decl);
  const byMetric = useMemo(() => {
    const out = new Map<string, { label: string; x: number[]; y: number[] }[]>();
    series.forEach((q, i) => {
      for (const s of q.data?.series ?? []) out.set(s.name, [...(out.get(s.name) ?? []), { label: `#${ids[i]}`, x: s.x, y: s.y }]);
    });
    return out;
  }, [series.map((q) => q.dataUpdatedAt).join(",")]);
  const metrics = [...new Set(experiments.flatMap((e) => Object.keys(e.last_metric ?? {})))].filter((k) => k !== "step").sort();

  return (
    <div>
      <p>
        <Link to={`/projects/${user}/${project}`}>
          {user}/{project}
        </Link>
      </p>
      <h1>Compare {ids.length} experiments</h1>
      {ids.length < 2 && <p className="error">Choose at least two experiments in the table to compare.</p>}
      <ErrorBox error={error} />
      <Card title="Declarations that differ, and final metrics (best in bold)">
        <table className="table" data-testid="compare-table">
          <thead>
            <tr>
              <th>Experiment</th>
              {differing.map((k) => (
                <th key={k}>{k}</th>
              ))}
              {metrics.map((m) => (
                <th key={m}>{m}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {experiments.map((e) => (
              <tr key={e.id}>
                <td>
                  <Link to={`/projects/${user}/${project}/experiments/${e.id}`}>{e.unique_name}</Link>
                </td>
                {differing.map((k) => (
                  <td key={k}>{fmt((e.declarations ?? {})[k])}</td>
                ))}
                {metrics.map((m) => {
                  const values = experiments.map((x) => (x.last_metric ?? {})[m]).filter((v): v is number => typeof v === "number");
                  const v = (e.last_metric ?? {})[m];
                  // Without knowing the objective, "best" is the lowest for loss-like names.
                  const best = /acc|auc|f1|precision|recall|score/i.test(m) ? Math.max(...values) : Math.min(...values);
                  return (
                    <td key={m} className={v === best ? "best" : undefined}>
                      {fmt(v)}
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </Card>
      <div className="row">
        <label className="inline">
          <input type="checkbox" checked={log} onChange={(e) => setLog(e.target.checked)} /> log scale
        </label>
        <label className="inline">
          smoothing <input type="range" min={0} max={0.99} step={0.01} value={smoothing} onChange={(e) => setSmoothing(Number(e.target.value))} />
        </label>
      </div>
      <div className="charts">
        {[...byMetric.entries()].map(([name, lines]) => (
          <Card key={name} title={name}>
            <MetricChart title={name} lines={lines} log={log} smoothing={smoothing} />
          </Card>
        ))}
      </div>
    </div>
  );
}
