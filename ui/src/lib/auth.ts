// The API token lives in session storage (this tab, until it closes), never in a URL.
const KEY = "plx.token";
const USER = "plx.username";
const listeners = new Set<() => void>();

export function getToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function getUsername(): string | null {
  return sessionStorage.getItem(USER);
}

export function signIn(token: string, username: string): void {
  sessionStorage.setItem(KEY, token);
  sessionStorage.setItem(USER, username);
  listeners.forEach((f) => f());
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(USER);
  listeners.forEach((f) => f());
}

export function onAuthChange(f: () => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}
