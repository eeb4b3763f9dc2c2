import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { Link, useParams } from "react-router-dom";
import { api, unwrap } from "../api/client";
import { Echart } from "../components/Echart";
import { Card, ErrorBox, fmt, Status, when } from "../components/ui";
import { bestSoFar, inRanges } from "../lib/series";
import { useProjectEvents } from "../lib/useEvents";

type Point = { id: number; status: string | null; declarations: Record<string, unknown>; metric: number | null; iteration: number | null; original: number | null };
type Rung = { iteration: number; bracket: number; rung: number; n_configs: number; resource: number };
const COUNTS = ["pending", "scheduled", "running", "succeeded", "failed", "stopped"] as const;
const DONE = new Set(["succeeded", "failed", "stopped"]);

export default function GroupPage() {
  const { user = "", project = "", id = "" } = useParams();
  const groupId = Number(id);
  const path = { username: user, project, group_id: groupId };
  const queryClient = useQueryClient();
  useProjectEvents(user, project);
  const detail = useQuery({
    queryKey: ["groups", user, project, "detail", groupId],
    queryFn: () => unwrap(api.GET("/api/v1/{username}/{project}/groups/{group_id}", { params: { path } })),
  });
  const group = detail.data;
  const hp = (group?.hptuning ?? {}) as Record<string, any>;
  const objective = (hp.hyperband?.metric ?? hp.bo?.metric ?? hp.early_stopping_policy?.metric ?? {}) as { name?: string; optimization?: string };
  const [chosen, setChosen] = useState<string>("");
  const metric = chosen || objective.name || "loss";
  const minimize = (objective.optimization ?? "minimize") !== "maximize";
  // Live while it runs: the project's change feed refreshes these queries (useProjectEvents).
  const live = group ? !DONE.has(group.last_status ?? "") : false;
  const points = useQuery({
    queryKey: ["groups", user, project, "points", groupId, metric],
    queryFn: () => unwrap(api.GET("/api/v1/{username}/{project}/groups/{group_id}/points", { params: { path, query: { metric, limit: 20000 } } })),
  });
  const decisions = useQuery({
    queryKey: ["groups", user, project, "decisions", groupId],
    queryFn: () => unwrap(api.GET("/api/v1/{username}/{project}/groups/{group_id}/decisions", { params: { path, query: { limit: 1000 } } })),
  });
  const stop = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/{username}/{project}/groups/{group_id}/stop", { params: { path }, body: {} as never })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["groups", user, project] }),
  });
  const rows = (points.data?.results ?? []) as Point[];
  const rungs = ((points.data as { rungs?: Rung[] } | undefined)?.rungs ?? []) as Rung[];
  const params = useMemo(() => [...new Set(rows.flatMap((p) => Object.keys(p.declarations)))].sort(), [rows]);
  const [ranges, setRanges] = useState<Record<string, [number, number]>>({});
  const filtered = useMemo(
    () => rows.filter((p) => inRanges({ ...p.declarations, [metric]: p.metric }, ranges)),
    [rows, ranges, metric],
  );

  return (
    <div>
      <p>
        <Link to={`/projects/${user}/${project}?tab=groups`}>
          {user}/{project}
        </Link>
      </p>
      <ErrorBox error={detail.error ?? points.error ?? stop.error} />
      {group && (
        <>
          <h1>
            {group.unique_name} <Status value={group.last_status} />
          </h1>
          <div className="row">
            <button disabled={!live} onClick={() => stop.mutate()}>
              Stop sweep
            </button>
            <label className="inline">
              metric{" "}
              <input aria-label="metric" value={chosen} placeholder={metric} onChange={(e) => setChosen(e.target.value.trim())} />
            </label>
          </div>
          <Card title="Progress">
            <Progress group={group as unknown as Record<string, number>} />
            <p className="muted" data-testid="concurrency">
              {group.search_algorithm} search · {group.num_running_experiments} running of concurrency {group.concurrency ?? "∞"} ·{" "}
              {group.num_experiments} experiments · iteration {group.current_iteration}
            </p>
            <details>
              <summary>Plan (hptuning)</summary>
              <pre className="pre">{JSON.stringify(group.hptuning, null, 1)}</pre>
            </details>
          </Card>
          <div className="grid">
            <Card title={`Best ${metric} so far`}>
              <BestSoFar rows={rows} minimize={minimize} />
            </Card>
            <Card title={`${metric} against one parameter`}>
              <Scatter rows={rows} params={params} metric={metric} />
            </Card>
          </div>
          <Card title="Parallel coordinates (drag on an axis to filter the table)">
            <Parallel rows={rows} params={params} metric={metric} onBrush={setRanges} />
            <p className="muted" data-testid="brushed">
              {filtered.length} of {rows.length} experiments selected
            </p>
            <PointsTable rows={filtered} params={params} metric={metric} user={user} project={project} minimize={minimize} />
          </Card>
          {rungs.length > 0 && (
            <Card title="Hyperband rungs">
              <Rungs rungs={rungs} rows={rows} minimize={minimize} />
            </Card>
          )}
          <Card title="Decisions (early stopping and the search's own)">
            <Ledger decisions={(decisions.data?.results ?? []) as any[]} />
          </Card>
        </>
      )}
    </div>
  );
}

function Progress({ group }: { group: Record<string, number> }) {
  const total = Math.max(1, group.num_experiments ?? 0);
  return (
    <div>
      <div className="bar" data-testid="progress">
        {COUNTS.map((s) => {
          const n = group[`num_${s}_experiments`] ?? 0;
          return n ? <span key={s} className={`seg status-${s}`} style={{ width: `${(100 * n) / total}%` }} title={`${s}: ${n}`} /> : null;
        })}
      </div>
      <p className="row counts" data-testid="counts">
        {COUNTS.map((s) => (
          <span key={s}>
            <Status value={s} /> {group[`num_${s}_experiments`] ?? 0}
          </span>
        ))}
      </p>
    </div>
  );
}

function BestSoFar({ rows, minimize }: { rows: Point[]; minimize: boolean }) {
  const done = rows.filter((p) => p.metric !== null);
  const best = bestSoFar(done.map((p) => p.metric), minimize);
  const option = useMemo(
    () => ({
      animation: false,
      tooltip: { trigger: "axis" },
      grid: { left: 50, right: 10, top: 10, bottom: 30 },
      xAxis: { type: "value", name: "experiment #", min: 1 },
      yAxis: { type: "value", scale: true },
      series: [
        { type: "scatter", symbolSize: 4, data: done.map((p, i) => [i + 1, p.metric]), itemStyle: { color: "#94a3b8" } },
        { type: "line", step: "end", showSymbol: false, data: best.map((b, i) => [i + 1, b]), lineStyle: { color: "#2563eb" } },
      ],
    }),
    [rows, minimize],
  );
  if (!done.length) return <p className="muted">No experiment has reported this metric yet.</p>;
  return <Echart option={option} height={240} testId="best-so-far" />;
}

function Scatter({ rows, params, metric }: { rows: Point[]; params: string[]; metric: string }) {
  const [param, setParam] = useState("");
  const p = param || params[0];
  const numeric = rows.filter((r) => r.metric !== null && typeof r.declarations[p] === "number");
  const option = useMemo(
    () => ({
      animation: false,
      tooltip: { formatter: (x: any) => `#${x.data[2]}: ${p}=${fmt(x.data[0])} ${metric}=${fmt(x.data[1])}` },
      grid: { left: 50, right: 10, top: 10, bottom: 30 },
      xAxis: { type: "value", name: p, scale: true },
      yAxis: { type: "value", name: metric, scale: true },
      series: [{ type: "scatter", symbolSize: 6, data: numeric.map((r) => [r.declarations[p], r.metric, r.id]) }],
    }),
    [rows, p, metric],
  );
  return (
    <div>
      <select aria-label="parameter" value={p} onChange={(e) => setParam(e.target.value)}>
        {params.map((x) => (
          <option key={x}>{x}</option>
        ))}
      </select>
      {numeric.length ? <Echart option={option} height={220} testId="scatter" /> : <p className="muted">No numeric points yet.</p>}
    </div>
  );
}

/** Parallel coordinates of declarations → metric; brushing numeric axes reports their ranges. */
function Parallel({ rows, params, metric, onBrush }: { rows: Point[]; params: string[]; metric: string; onBrush: (r: Record<string, [number, number]>) => void }) {
  const dims = [...params, metric];
  const categories = useMemo(() => {
    const out: Record<string, string[]> = {};
    for (const d of params) {
      if (rows.some((r) => typeof r.declarations[d] !== "number")) out[d] = [...new Set(rows.map((r) => String(r.declarations[d])))].sort();
    }
    return out;
  }, [rows, params]);
  const option = useMemo(
    () => ({
      animation: false,
      parallelAxis: dims.map((d, i) =>
        categories[d] ? { dim: i, name: d, type: "category", data: categories[d] } : { dim: i, name: d, type: "value", scale: true },
      ),
      parallel: { left: 40, right: 60, top: 30, bottom: 20 },
      visualMap: { show: false, min: Math.min(...rows.map((r) => r.metric ?? Infinity)), max: Math.max(...rows.map((r) => r.metric ?? -Infinity)), dimension: dims.length - 1, inRange: { color: ["#2563eb", "#dc2626"] } },
      series: [
        {
          type: "parallel",
          lineStyle: { width: 1, opacity: rows.length > 2000 ? 0.15 : 0.5 },
          progressive: 2000,
          data: rows.map((r) => [...params.map((d) => (categories[d] ? String(r.declarations[d]) : r.declarations[d])), r.metric]),
        },
      ],
    }),
    [rows, params, metric, categories],
  );
  const events = useMemo(
    () => ({
      // After a brush on any axis, read every numeric axis's selected intervals.
      axisareaselected: (_event: unknown, chart: any) => {
        const model = chart.getModel();
        const ranges: Record<string, [number, number]> = {};
        dims.forEach((d, i) => {
          if (categories[d]) return;
          const intervals = model.getComponent("parallelAxis", i)?.activeIntervals as [number, number][] | undefined;
          if (intervals?.length) ranges[d] = [Math.min(...intervals.map((x) => x[0])), Math.max(...intervals.map((x) => x[1]))];
        });
        onBrush(ranges);
      },
    }),
    [dims.join("|"), categories, onBrush],
  );
  return <Echart option={option} height={320} testId="parallel" onEvents={events} />;
}

function PointsTable({ rows, params, metric, user, project, minimize }: { rows: Point[]; params: string[]; metric: string; user: string; project: string; minimize: boolean }) {
  // Best first, experiments without the metric last; the 200 best of the selection.
  const sorted = [...rows]
    .sort((a, b) => (a.metric === null ? 1 : b.metric === null ? -1 : minimize ? a.metric - b.metric : b.metric - a.metric))
    .slice(0, 200);
  return (
    <table className="table" data-testid="group-experiments">
      <thead>
        <tr>
          <th>#</th>
          <th>Status</th>
          {params.map((p) => (
            <th key={p}>{p}</th>
          ))}
          <th>{metric}</th>
        </tr>
      </thead>
      <tbody>
        {sorted.map((r) => (
          <tr key={r.id}>
            <td>
              <Link to={`/projects/${user}/${project}/experiments/${r.id}`}>{r.id}</Link>
            </td>
            <td>
              <Status value={r.status} />
            </td>
            {params.map((p) => (
              <td key={p}>{fmt(r.declarations[p])}</td>
            ))}
            <td>{fmt(r.metric)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Rungs({ rungs, rows, minimize }: { rungs: Rung[]; rows: Point[]; minimize: boolean }) {
  const byIteration = new Map<number, Point[]>();
  rows.forEach((p) => p.iteration !== null && byIteration.set(p.iteration, [...(byIteration.get(p.iteration) ?? []), p]));
  const promoted = new Set(rows.map((p) => p.original).filter((x): x is number => x !== null));
  const brackets = [...new Set(rungs.map((r) => r.bracket))];
  return (
    <div className="rungs" data-testid="rungs">
      {brackets.map((b) => (
        <div key={b} className="bracket">
          <h4>Bracket {b}</h4>
          {rungs
            .filter((r) => r.bracket === b)
            .map((r) => {
              const trials = [...(byIteration.get(r.iteration) ?? [])].sort((x, y) => ((x.metric ?? Infinity) - (y.metric ?? Infinity)) * (minimize ? 1 : -1));
              return (
                <div key={r.iteration} className="rung">
                  <strong>
                    rung {r.rung} · {r.n_configs} configs · resource {fmt(r.resource)}
                  </strong>
                  <div className="trials">
                    {trials.map((t) => (
                      <span key={t.id} className={`trial status-${t.status}${promoted.has(t.id) ? " promoted" : ""}`} title={`#${t.id} ${fmt(t.metric)}${promoted.has(t.id) ? " (promoted)" : ""}`}>
                        {t.id}
                        {promoted.has(t.id) ? "↑" : ""}
                      </span>
                    ))}
                    {!trials.length && <span className="muted">not started</span>}
                  </div>
                </div>
              );
            })}
        </div>
      ))}
    </div>
  );
}

function Ledger({ decisions }: { decisions: { id: number; kind: string; reason: string; experiment_ids: number[] | null; inputs: unknown; created_at: string }[] }) {
  if (!decisions.length) return <p className="muted" data-testid="ledger">No decision yet: nothing was stopped early.</p>;
  return (
    <table className="table" data-testid="ledger">
      <thead>
        <tr>
          <th>When</th>
          <th>Decision</th>
          <th>Why</th>
          <th>Experiments</th>
          <th>On what values</th>
        </tr>
      </thead>
      <tbody>
        {decisions.map((d) => (
          <tr key={d.id}>
            <td>{when(d.created_at)}</td>
            <td>{d.kind}</td>
            <td>{d.reason}</td>
            <td>{(d.experiment_ids ?? []).join(", ") || "—"}</td>
            <td>
              <code>{JSON.stringify(d.inputs)}</code>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
