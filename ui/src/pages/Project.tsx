import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { api, request, unwrap } from "../api/client";
import { ExperimentsTable } from "../components/ExperimentsTable";
import { Card, ErrorBox, Status, when } from "../components/ui";
import { useProjectEvents } from "../lib/useEvents";

const TABS = ["experiments", "groups", "jobs", "builds", "tensorboards", "notebooks", "code"] as const;
type Tab = (typeof TABS)[number];

export function ProjectPage() {
  const { user = "", project = "" } = useParams();
  const [params, setParams] = useSearchParams();
  const tab = (TABS.includes(params.get("tab") as Tab) ? params.get("tab") : "experiments") as Tab;
  useProjectEvents(user, project);
  const detail = useQuery({
    queryKey: ["project", user, project],
    queryFn: () => unwrap(api.GET("/api/v1/{username}/{project}", { params: { path: { username: user, project } } })),
  });
  return (
    <div>
      <h1>
        {user}/{project}
      </h1>
      <ErrorBox error={detail.error} />
      {detail.data && <p className="muted">{detail.data.description}</p>}
      <nav className="tabs">
        {TABS.map((t) => (
          <button key={t} className={t === tab ? "tab on" : "tab"} onClick={() => setParams({ tab: t })}>
            {t}
          </button>
        ))}
      </nav>
      {tab === "experiments" && <ExperimentsTable user={user} project={project} />}
      {tab === "groups" && <Groups user={user} project={project} />}
      {(tab === "jobs" || tab === "builds") && <Runs user={user} project={project} kind={tab} />}
      {tab === "tensorboards" && <Tensorboards user={user} project={project} />}
      {tab === "notebooks" && <Notebook user={user} project={project} />}
      {tab === "code" && <Code user={user} project={project} />}
    </div>
  );
}

function Groups({ user, project }: { user: string; project: string }) {
  const groups = useQuery({
    queryKey: ["groups", user, project, "list"],
    queryFn: () => unwrap(api.GET("/api/v1/{username}/{project}/groups", { params: { path: { username: user, project }, query: { limit: 100 } } })),
  });
  return (
    <>
      <ErrorBox error={groups.error} />
      <table className="table" data-testid="groups">
        <thead>
          <tr>
            <th>Group</th>
            <th>Status</th>
            <th>Search</th>
            <th>Concurrency</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {groups.data?.results.map((g) => (
            <tr key={g.id}>
              <td>
                <Link to={`/projects/${user}/${project}/groups/${g.id}`}>{g.unique_name}</Link>
              </td>
              <td>
                <Status value={g.last_status} />
              </td>
              <td>{g.search_algorithm}</td>
              <td>{g.concurrency}</td>
              <td>{when(g.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function Runs({ user, project, kind }: { user: string; project: string; kind: "jobs" | "builds" }) {
  const runs = useQuery({
    queryKey: ["runs", user, project, kind],
    queryFn: async () => (await request(`/api/v1/${user}/${project}/${kind}?limit=100`)).json(),
  });
  const rows = (runs.data?.results ?? []) as { id: number; unique_name: string; last_status: string; created_at: string }[];
  return (
    <>
      <ErrorBox error={runs.error} />
      <table className="table">
        <thead>
          <tr>
            <th>{kind}</th>
            <th>Status</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.id}>
              <td>{r.unique_name}</td>
              <td>
                <Status value={r.last_status} />
              </td>
              <td>{when(r.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {runs.isSuccess && !rows.length && <p className="muted">No {kind} yet.</p>}
    </>
  );
}

function Tensorboards({ user, project }: { user: string; project: string }) {
  const queryClient = useQueryClient();
  const boards = useQuery({
    queryKey: ["tensorboards", user, project],
    queryFn: async () => (await request(`/api/v1/${user}/${project}/tensorboards?limit=100`)).json(),
    refetchInterval: 5000,
  });
  const act = useMutation({
    mutationFn: (action: "start" | "stop") => request(`/api/v1/${user}/${project}/tensorboard/${action}`, { method: "POST" }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["tensorboards", user, project] }),
  });
  const rows = (boards.data?.results ?? []) as { id: number; unique_name: string; last_status: string; url?: string }[];
  return (
    <Card
      title="Tensorboards"
      actions={
        <span className="row">
          <button onClick={() => act.mutate("start")}>Start project tensorboard</button>
          <button onClick={() => act.mutate("stop")}>Stop</button>
        </span>
      }
    >
      <ErrorBox error={boards.error ?? act.error} />
      <ul>
        {rows.map((b) => (
          <li key={b.id}>
            {b.unique_name} <Status value={b.last_status} /> {b.url && <a href={b.url} target="_blank" rel="noreferrer">open</a>}
          </li>
        ))}
      </ul>
    </Card>
  );
}

function Notebook({ user, project }: { user: string; project: string }) {
  const queryClient = useQueryClient();
  const notebook = useQuery({
    queryKey: ["notebook", user, project],
    queryFn: async () => {
      try {
        return await (await request(`/api/v1/${user}/${project}/notebook`)).json();
      } catch {
        return null;
      }
    },
    refetchInterval: 5000,
  });
  const act = useMutation({
    mutationFn: (action: "start" | "stop") => request(`/api/v1/${user}/${project}/notebook/${action}`, { method: "POST" }),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["notebook", user, project] }),
  });
  const nb = notebook.data as { unique_name?: string; last_status?: string; url?: string } | null;
  return (
    <Card
      title="Notebook"
      actions={
        <span className="row">
          <button onClick={() => act.mutate("start")}>Start</button>
          <button onClick={() => act.mutate("stop")}>Stop</button>
        </span>
      }
    >
      <ErrorBox error={act.error} />
      {nb ? (
        <p>
          {nb.unique_name} <Status value={nb.last_status} /> {nb.url && <a href={nb.url} target="_blank" rel="noreferrer">open</a>}
        </p>
      ) : (
        <p className="muted">No notebook.</p>
      )}
    </Card>
  );
}

function Code({ user, project }: { user: string; project: string }) {
  const [file, setFile] = useState<File | null>(null);
  const queryClient = useQueryClient();
  const repo = useQuery({
    queryKey: ["repo", user, project],
    queryFn: async () => {
      try {
        return await (await request(`/api/v1/${user}/${project}/repo`)).json();
      } catch {
        return null;
      }
    },
  });
  const upload = useMutation({
    mutationFn: async () => {
      const form = new FormData();
      form.append("repo", file!);
      return request(`/api/v1/${user}/${project}/repo/upload`, { method: "PUT", body: form });
    },
    onSuccess: () => queryClient.invalidateQueries({ queryKey: ["repo", user, project] }),
  });
  return (
    <Card title="Code">
      <pre className="pre">{repo.data ? JSON.stringify(repo.data, null, 1) : "No code uploaded yet."}</pre>
      <div className="row">
        <input type="file" accept=".tar.gz,.tgz,.tar" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        <button disabled={!file} onClick={() => upload.mutate()}>
          Upload
        </button>
      </div>
      <ErrorBox error={upload.error} />
      <button
        onClick={async () => {
          const blob = await (await request(`/api/v1/${user}/${project}/repo/download`)).blob();
          const link = document.createElement("a");
          link.href = URL.createObjectURL(blob);
          link.download = `${project}.tar.gz`;
          link.click();
          URL.revokeObjectURL(link.href);
        }}
      >
        Download latest
      </button>
    </Card>
  );
}
