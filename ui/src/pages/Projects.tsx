import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { Link } from "react-router-dom";
import { api, unwrap, type Project } from "../api/client";
import { Card, ErrorBox, when } from "../components/ui";
import { useAuth } from "../lib/useAuth";

export function ProjectsPage() {
  const { username } = useAuth();
  const user = username ?? "";
  const queryClient = useQueryClient();
  const projects = useQuery({
    queryKey: ["projects", user],
    queryFn: () => unwrap(api.GET("/api/v1/{username}", { params: { path: { username: user }, query: { limit: 1000 } } })),
  });
  const bookmarks = useQuery({
    queryKey: ["bookmarks", user],
    queryFn: () =>
      unwrap(api.GET("/api/v1/bookmarks/{username}/{kind}", { params: { path: { username: user, kind: "projects" }, query: { limit: 1000 } } })),
  });
  const marked = new Map<string, Project>();
  for (const b of (bookmarks.data?.results ?? []) as Record<string, unknown>[]) {
    const content = (b.content ?? b) as Project;
    if (content?.unique_name) marked.set(content.unique_name, content);
  }
  const own = (projects.data?.results ?? []) as Project[];
  const rows = [...marked.values(), ...own.filter((p) => !marked.has(p.unique_name))];

  const refresh = () => {
    queryClient.invalidateQueries({ queryKey: ["projects"] });
    queryClient.invalidateQueries({ queryKey: ["bookmarks"] });
  };
  const remove = useMutation({
    mutationFn: (p: Project) => unwrap(api.DELETE("/api/v1/{username}/{project}", { params: { path: { username: p.user, project: p.name } } })),
    onSuccess: refresh,
  });
  const edit = useMutation({
    mutationFn: ({ p, description }: { p: Project; description: string }) =>
      unwrap(api.PATCH("/api/v1/{username}/{project}", { params: { path: { username: p.user, project: p.name } }, body: { description, merge: false } })),
    onSuccess: refresh,
  });

  return (
    <div>
      <h1>Projects</h1>
      <CreateProject onCreated={refresh} />
      <ErrorBox error={projects.error ?? bookmarks.error ?? remove.error ?? edit.error} />
      <table className="table" data-testid="projects">
        <thead>
          <tr>
            <th>Project</th>
            <th>Description</th>
            <th>Visibility</th>
            <th>Experiments</th>
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {rows.map((p) => (
            <tr key={p.unique_name}>
              <td>
                {marked.has(p.unique_name) && <span title="bookmarked">★ </span>}
                <Link to={`/projects/${p.user}/${p.name}`}>{p.unique_name}</Link>
              </td>
              <td>{p.description}</td>
              <td>{p.is_public ? "public" : "private"}</td>
              <td>{(p as Record<string, unknown>).num_experiments as number ?? ""}</td>
              <td>{when(p.created_at)}</td>
              <td className="actions">
                {p.user === user && (
                  <>
                    <button onClick={() => { const d = window.prompt("Description", p.description ?? ""); if (d !== null) edit.mutate({ p, description: d }); }}>Edit</button>
                    <button className="danger" onClick={() => window.confirm(`Delete ${p.unique_name} and all its runs?`) && remove.mutate(p)}>Delete</button>
                  </>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {projects.isSuccess && rows.length === 0 && <p className="muted">No projects yet: create one above.</p>}
    </div>
  );
}

function CreateProject({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [isPublic, setIsPublic] = useState(false);
  const create = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/projects", { body: { name, description, is_public: isPublic } })),
    onSuccess: () => {
      setName("");
      setDescription("");
      onCreated();
    },
  });
  function submit(e: FormEvent) {
    e.preventDefault();
    create.mutate();
  }
  return (
    <Card title="New project">
      <form className="row" onSubmit={submit}>
        <input placeholder="name" value={name} onChange={(e) => setName(e.target.value)} required />
        <input placeholder="description" value={description} onChange={(e) => setDescription(e.target.value)} />
        <label className="inline">
          <input type="checkbox" checked={isPublic} onChange={(e) => setIsPublic(e.target.checked)} /> public
        </label>
        <button type="submit">Create</button>
      </form>
      <ErrorBox error={create.error} />
    </Card>
  );
}
