// The typed API client: openapi-fetch over the types generated from plx's own /openapi.json.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";
import { getToken, signOut } from "../lib/auth";

export type Schemas = components["schemas"];
export type Experiment = Schemas["ExperimentOut"];
export type ExperimentDetail = Schemas["ExperimentDetailOut"];
export type Group = Schemas["GroupOut"];
export type GroupDetail = Schemas["GroupDetailOut"];
export type Project = Schemas["ProjectOut"];
export type Decision = Schemas["GroupDecisionOut"];

/** An error answered by plx, carrying its `detail` (or a network failure, status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(detail);
  }
}

const auth: Middleware = {
  onRequest({ request }) {
    const token = getToken();
    if (token) request.headers.set("Authorization", `token ${token}`);
    return request;
  },
  onResponse({ response }) {
    if (response.status === 401 && getToken()) signOut();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: window.location.origin });
api.use(auth);

export function detailOf(error: unknown, status: number): string {
  if (error && typeof error === "object" && "detail" in error) {
    const detail = (error as { detail: unknown }).detail;
    return typeof detail === "string" ? detail : JSON.stringify(detail);
  }
  return `The server answered ${status}.`;
}

/** Unwrap an openapi-fetch result: the data, or a thrown ApiError with plx's message. */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let result;
  try {
    result = await call;
  } catch {
    throw new ApiError(0, "The server cannot be reached (network error).");
  }
  if (result.error !== undefined || !result.response.ok) {
    throw new ApiError(result.response.status, detailOf(result.error, result.response.status));
  }
  return result.data as T;
}

/** A raw call for routes whose body the generated types do not describe (multipart, text). */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const token = getToken();
  if (token) headers.set("Authorization", `token ${token}`);
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers });
  } catch {
    throw new ApiError(0, "The server cannot be reached (network error).");
  }
  if (!response.ok) {
    let body: unknown = undefined;
    try {
      body = await response.json();
    } catch {
      /* not JSON */
    }
    if (response.status === 401 && getToken()) signOut();
    throw new ApiError(response.status, detailOf(body, response.status));
  }
  return response;
}
