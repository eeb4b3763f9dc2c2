import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { api, unwrap } from "../api/client";
import { MetricChart } from "../components/MetricChart";
import { Card, ErrorBox, fmt, Status, when } from "../components/ui";
import { getToken } from "../lib/auth";
import { useProjectEvents } from "../lib/useEvents";
import { useSeries } from "../lib/useSeries";

const DONE = new Set(["succeeded", "failed", "stopped", "skipped"]);

export default function ExperimentPage() {
  const { user = "", project = "", id = "" } = useParams();
  const expId = Number(id);
  const path = { username: user, project, exp_id: expId };
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  useProjectEvents(user, project);
  const detail = useQuery({
    queryKey: ["experiments", user, project, "detail", expId],
    queryFn: () => unwrap(api.GET("/api/v1/{username}/{project}/experiments/{exp_id}", { params: { path } })),
  });
  const statuses = useQuery({
    queryKey: ["experiments", user, project, "statuses", expId],
    queryFn: () => unwrap(api.GET("/api/v1/{username}/{project}/experiments/{exp_id}/statuses", { params: { path, query: { limit: 100 } } })),
  });
  const jobs = useQuery({
    queryKey: ["experiments", user, project, "jobs", expId],
    queryFn: () => unwrap(api.GET("/api/v1/{username}/{project}/experiments/{exp_id}/jobs", { params: { path, query: { limit: 100 } } })),
  });
  const act = useMutation({
    mutationFn: async (action: "stop" | "restart" | "resume" | "copy") => {
      const url = `/api/v1/{username}/{project}/experiments/{exp_id}/${action}` as "/api/v1/{username}/{project}/experiments/{exp_id}/stop";
      const { data, response, error } = await api.POST(url, { params: { path } });
      if (!response.ok) throw new Error((error as { detail?: string })?.detail ?? String(response.status));
      return data as { id?: number } | undefined;
    },
    onSuccess: (data, action) => {
      queryClient.invalidateQueries({ queryKey: ["experiments", user, project] });
      if (action !== "stop" && data && typeof data.id === "number") navigate(`/projects/${user}/${project}/experiments/${data.id}`);
    },
  });
  const exp = detail.data;
  const running = exp ? !DONE.has(exp.last_status ?? "") : false;
  return (
    <div>
      <p>
        <Link to={`/projects/${user}/${project}`}>
          {user}/{project}
        </Link>
      </p>
      <ErrorBox error={detail.error ?? act.error} />
      {exp && (
        <>
          <h1>
            {exp.unique_name} <Status value={exp.last_status} />
          </h1>
          <div className="row">
            <button disabled={!running} onClick={() => act.mutate("stop")}>Stop</button>
            <button onClick={() => act.mutate("restart")}>Restart</button>
            <button onClick={() => act.mutate("resume")}>Resume</button>
            <button onClick={() => act.mutate("copy")}>Copy</button>
          </div>
          <div className="grid">
            <Card title="Overview">
              <dl className="facts">
                <dt>created</dt><dd>{when(exp.created_at)}</dd>
                <dt>started</dt><dd>{when(exp.started_at)}</dd>
                <dt>finished</dt><dd>{when(exp.finished_at)}</dd>
                <dt>group</dt><dd>{exp.experiment_group ?? "—"}</dd>
                <dt>tags</dt><dd>{(exp.tags ?? []).join(", ") || "—"}</dd>
                <dt>last metric</dt><dd>{fmt(exp.last_metric)}</dd>
              </dl>
            </Card>
            <Card title="Declarations">
              <dl className="facts">
                {Object.entries(exp.declarations ?? {}).map(([k, v]) => (
                  <FactRow key={k} name={k} value={v} />
                ))}
              </dl>
            </Card>
            <Card title="Status timeline">
              <ol className="timeline" data-testid="timeline">
                {(statuses.data?.results ?? []).map((s) => (
                  <li key={s.id}>
                    <Status value={s.status} /> {when(s.created_at)} {s.message && <span className="muted">{s.message}</span>}
                  </li>
                ))}
              </ol>
            </Card>
            <Card title="Replicas">
              <ul>
                {((jobs.data?.results ?? []) as { id: number; role: string; last_status: string | null }[]).map((j) => (
                  <li key={j.id}>
                    {j.role} <Status value={j.last_status} />
                  </li>
                ))}
              </ul>
            </Card>
          </div>
          <Metrics user={user} project={project} id={expId} names={Object.keys(exp.last_metric ?? {}).filter((k) => k !== "step")} />
          <Card title="Config and resources">
            <pre className="pre">{JSON.stringify({ config: exp.config, resources: exp.resources }, null, 1)}</pre>
          </Card>
          <Logs user={user} project={project} id={expId} live={running} />
        </>
      )}
    </div>
  );
}

function FactRow({ name, value }: { name: string; value: unknown }) {
  return (
    <>
      <dt>{name}</dt>
      <dd>{fmt(value)}</dd>
    </>
  );
}

function Metrics({ user, project, id, names }: { user: string; project: string; id: number; names: string[] }) {
  const [log, setLog] = useState(false);
  const [smoothing, setSmoothing] = useState(0);
  const [axis, setAxis] = useState<"step" | "time">("step");
  const [range, setRange] = useState<[number, number] | null>(null);
  const [series] = useSeries(user, project, [id], { axis, range, points: 2000 });
  const sets = series?.data?.series ?? [];
  return (
    <Card
      title="Metrics"
      actions={
        <span className="row">
          <select aria-label="x axis" value={axis} onChange={(e) => { setAxis(e.target.value as "step" | "time"); setRange(null); }}>
            <option value="step">step</option>
            <option value="time">time</option>
          </select>
          <label className="inline"><input type="checkbox" checked={log} onChange={(e) => setLog(e.target.checked)} /> log</label>
          <label className="inline">smoothing <input type="range" min={0} max={0.99} step={0.01} value={smoothing} onChange={(e) => setSmoothing(Number(e.target.value))} /></label>
          <button disabled={!range} onClick={() => setRange(null)}>Reset zoom</button>
        </span>
      }
    >
      <ErrorBox error={series?.error} />
      {!names.length && <p className="muted">No metrics reported yet.</p>}
      <div className="charts">
        {sets.map((s) => (
          <MetricChart key={s.name} title={s.name} lines={[{ label: `#${id}`, x: s.x, y: s.y }]} log={log} smoothing={smoothing} time={axis === "time"} onZoom={setRange} />
        ))}
      </div>
    </Card>
  );
}

function Logs({ user, project, id, live }: { user: string; project: string; id: number; live: boolean }) {
  const [lines, setLines] = useState<string[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setLines([]);
    setError(null);
    const token = getToken();
    if (!token) return;
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/v1/${user}/${project}/experiments/${id}/logs`, ["plx.token", token]);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data) as { log_lines: string[] };
      // Keep the last 5,000 lines: a chatty run must not grow the page without bound.
      setLines((old) => [...old, ...message.log_lines].slice(-5000));
    };
    socket.onerror = () => setError("The log stream was interrupted.");
    return () => socket.close();
  }, [user, project, id, live]);
  return (
    <Card title="Logs">
      {error && <div className="error">{error}</div>}
      <pre className="pre logs" data-testid="logs">{lines.join("\n") || "No log lines yet."}</pre>
    </Card>
  );
}
