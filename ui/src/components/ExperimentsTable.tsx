import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { createColumnHelper, flexRender, getCoreRowModel, useReactTable, type ColumnDef } from "@tanstack/react-table";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router-dom";
import { api, unwrap, type Experiment } from "../api/client";
import { combineQuery, keysOf, nextSort, STATUSES } from "../lib/query";
import { ErrorBox, fmt, Status, when } from "./ui";

const PAGE = 100;
const ROW_HEIGHT = 31; // px, an estimate: rows are measured once drawn
const SORTABLE = new Set(["created_at", "updated_at", "started_at", "finished_at"]);
const helper = createColumnHelper<Experiment>();

/** The experiments of a project (or of one group): server-side paging, sorting and v0 queries. */
export function ExperimentsTable({ user, project, group }: { user: string; project: string; group?: number }) {
  const [params, setParams] = useSearchParams();
  const text = params.get("query") ?? "";
  const sort = params.get("sort") ?? "";
  const offset = Number(params.get("offset") ?? 0) || 0;
  const statuses = (params.get("status") ?? "").split(",").filter(Boolean);
  const [draft, setDraft] = useState(text);
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [extra, setExtra] = useState<string[]>([]);
  const navigate = useNavigate();
  const queryClient = useQueryClient();

  const update = (changes: Record<string, string>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) (v ? next.set(k, v) : next.delete(k));
    setParams(next, { replace: true });
  };
  const query = combineQuery(text, statuses);
  const list = useQuery({
    queryKey: ["experiments", user, project, group ?? null, query, sort, offset],
    queryFn: () =>
      unwrap(
        api.GET("/api/v1/{username}/{project}/experiments", {
          params: {
            path: { username: user, project },
            query: { limit: PAGE, offset, query: query || undefined, sort: sort || undefined, group },
          },
        }),
      ),
    placeholderData: keepPreviousData,
  });
  const rows = (list.data?.results ?? []) as Experiment[];
  const count = list.data?.count ?? 0;
  const metricKeys = keysOf(rows as Record<string, unknown>[], "last_metric");
  const declKeys = keysOf(rows as Record<string, unknown>[], "declarations");
  const shown = extra.length ? extra : [...metricKeys.map((k) => `metric.${k}`), ...declKeys.slice(0, 4).map((k) => `declarations.${k}`)];

  const columns = useMemo<ColumnDef<Experiment, any>[]>(() => {
    const base: ColumnDef<Experiment, any>[] = [
      helper.display({
        id: "select",
        header: () => null,
        cell: ({ row }) => (
          <input
            type="checkbox"
            aria-label={`select ${row.original.id}`}
            checked={selected.has(row.original.id)}
            onChange={(e) => {
              const next = new Set(selected);
              if (e.target.checked) next.add(row.original.id);
              else next.delete(row.original.id);
              setSelected(next);
            }}
          />
        ),
      }),
      helper.accessor("unique_name", {
        header: "Experiment",
        cell: (c) => <Link to={`/projects/${user}/${project}/experiments/${c.row.original.id}`}>{c.getValue()}</Link>,
      }),
      helper.accessor("last_status", { header: "Status", cell: (c) => <Status value={c.getValue()} /> }),
      helper.accessor("created_at", { header: "created_at", cell: (c) => when(c.getValue()) }),
      helper.accessor("finished_at", { header: "finished_at", cell: (c) => when(c.getValue()) }),
    ];
    for (const key of shown) {
      const [kind, name] = [key.slice(0, key.indexOf(".")), key.slice(key.indexOf(".") + 1)];
      base.push(
        helper.display({
          id: key,
          header: key,
          cell: ({ row }) => fmt(((kind === "metric" ? row.original.last_metric : row.original.declarations) ?? {})[name]),
        }),
      );
    }
    return base;
  }, [shown.join("|"), selected, user, project]);

  const table = useReactTable({ data: rows, columns, getCoreRowModel: getCoreRowModel() });
  // Only the rows in view (and a few around) are in the DOM: a page stays cheap to draw and to
  // re-render (selection, live updates) however many rows and columns it has.
  const scroller = useRef<HTMLDivElement>(null);
  const tableRows = table.getRowModel().rows;
  const virtualizer = useVirtualizer({
    count: tableRows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
  });
  const virtualRows = virtualizer.getVirtualItems();
  // A new page starts at its top. (Braces: Chromium's scrollTo may return a promise, which React
  // would take for the effect's cleanup.)
  useEffect(() => {
    scroller.current?.scrollTo({ top: 0 });
  }, [query, sort, offset]);
  const padding = {
    top: virtualRows.length ? virtualRows[0].start : 0,
    bottom: virtualRows.length ? virtualizer.getTotalSize() - virtualRows[virtualRows.length - 1].end : 0,
  };
  const ids = [...selected];
  const act = useMutation({
    mutationFn: (action: "stop" | "delete") =>
      unwrap(
        action === "stop"
          ? api.POST("/api/v1/{username}/{project}/experiments/stop", { params: { path: { username: user, project } }, body: { ids } })
          : api.POST("/api/v1/{username}/{project}/experiments/delete", { params: { path: { username: user, project } }, body: { ids } }),
      ),
    onSuccess: () => {
      setSelected(new Set());
      queryClient.invalidateQueries({ queryKey: ["experiments", user, project] });
    },
  });

  const sortable = (id: string) => SORTABLE.has(id) || id.startsWith("metric.");
  return (
    <div className="experiments">
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          update({ query: draft.trim(), offset: "" });
        }}
      >
        <input
          className="grow"
          aria-label="query"
          placeholder="v0 query, e.g. metric.loss:<0.5, declarations.lr:0.1|0.2, tags:best"
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
        />
        <button type="submit">Filter</button>
      </form>
      <div className="row chips">
        {STATUSES.map((s) => (
          <button
            key={s}
            className={statuses.includes(s) ? "chip on" : "chip"}
            onClick={() => update({ status: (statuses.includes(s) ? statuses.filter((x) => x !== s) : [...statuses, s]).join(","), offset: "" })}
          >
            {s}
          </button>
        ))}
        <span className="spacer" />
        <ColumnPicker options={[...metricKeys.map((k) => `metric.${k}`), ...declKeys.map((k) => `declarations.${k}`)]} value={shown} onChange={setExtra} />
      </div>
      <ErrorBox error={list.error ?? act.error} />
      <div className="row">
        <span className="muted" data-testid="count">
          {count} experiments{list.isFetching ? " …" : ""}
        </span>
        <span className="spacer" />
        <button disabled={ids.length < 2} onClick={() => navigate(`/projects/${user}/${project}/compare?ids=${ids.join(",")}`)}>
          Compare {ids.length || ""}
        </button>
        <button disabled={!ids.length} onClick={() => act.mutate("stop")}>
          Stop
        </button>
        <button className="danger" disabled={!ids.length} onClick={() => window.confirm(`Delete ${ids.length} experiments?`) && act.mutate("delete")}>
          Delete
        </button>
      </div>
      <div ref={scroller} className="table-scroll">
      <table className="table" data-testid="experiments">
        <thead>
          {table.getHeaderGroups().map((hg) => (
            <tr key={hg.id}>
              {hg.headers.map((h) => (
                <th
                  key={h.id}
                  className={sortable(h.column.id) ? "sortable" : undefined}
                  onClick={() => sortable(h.column.id) && update({ sort: nextSort(sort, h.column.id), offset: "" })}
                >
                  {flexRender(h.column.columnDef.header, h.getContext())}
                  {sort === h.column.id ? " ▲" : sort === `-${h.column.id}` ? " ▼" : ""}
                </th>
              ))}
            </tr>
          ))}
        </thead>
        <tbody>
          {padding.top > 0 && (
            <tr aria-hidden>
              <td colSpan={columns.length} style={{ height: padding.top, padding: 0 }} />
            </tr>
          )}
          {virtualRows.map((v) => {
            const row = tableRows[v.index];
            return (
              <tr key={row.id} data-index={v.index} ref={virtualizer.measureElement}>
                {row.getVisibleCells().map((cell) => (
                  <td key={cell.id}>{flexRender(cell.column.columnDef.cell, cell.getContext())}</td>
                ))}
              </tr>
            );
          })}
          {padding.bottom > 0 && (
            <tr aria-hidden>
              <td colSpan={columns.length} style={{ height: padding.bottom, padding: 0 }} />
            </tr>
          )}
        </tbody>
      </table>
      </div>
      <div className="row">
        <button disabled={offset === 0} onClick={() => update({ offset: String(Math.max(0, offset - PAGE)) })}>
          ← Previous
        </button>
        <span className="muted">
          {count ? `${offset + 1}–${Math.min(offset + PAGE, count)} of ${count}` : ""}
        </span>
        <button disabled={offset + PAGE >= count} onClick={() => update({ offset: String(offset + PAGE) })}>
          Next →
        </button>
      </div>
    </div>
  );
}

function ColumnPicker({ options, value, onChange }: { options: string[]; value: string[]; onChange: (v: string[]) => void }) {
  return (
    <details className="picker">
      <summary>Columns</summary>
      {options.map((o) => (
        <label key={o} className="inline">
          <input
            type="checkbox"
            checked={value.includes(o)}
            onChange={(e) => onChange(e.target.checked ? [...value, o] : value.filter((x) => x !== o))}
          />
          {o}
        </label>
      ))}
      {!options.length && <span className="muted">no metrics or declarations on this page</span>}
    </details>
  );
}
