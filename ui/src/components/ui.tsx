import type { ReactNode } from "react";
import { ApiError } from "../api/client";

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const message =
    error instanceof ApiError
      ? error.status === 403
        ? `Not allowed: ${error.detail}`
        : error.status === 404
          ? "Not found, or not visible to you."
          : error.detail
      : String(error);
  return (
    <div className="error" role="alert">
      {message}
    </div>
  );
}

export function Status({ value }: { value: string | null | undefined }) {
  return <span className={`status status-${value ?? "none"}`}>{value ?? "—"}</span>;
}

export function Card({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="card">
      <div className="card-head">
        <h3>{title}</h3>
        {actions}
      </div>
      {children}
    </section>
  );
}

export function fmt(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function when(value: string | null | undefined): string {
  return value ? new Date(value).toLocaleString() : "—";
}
