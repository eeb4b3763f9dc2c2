import type { ReactNode } from "react";
import { Link, useNavigate } from "react-router-dom";
import { api } from "../api/client";
import { signOut } from "../lib/auth";
import { useAuth } from "../lib/useAuth";

export function Layout({ children }: { children: ReactNode }) {
  const { username } = useAuth();
  const navigate = useNavigate();
  async function logout() {
    await api.POST("/api/v1/users/logout").catch(() => undefined);
    signOut();
    navigate("/login");
  }
  return (
    <div className="app">
      <header className="topbar">
        <Link to="/" className="brand">
          plx
        </Link>
        <nav>
          <Link to="/">Projects</Link>
          <a href="/docs">API docs</a>
        </nav>
        <span className="spacer" />
        <span className="muted">{username}</span>
        <button onClick={logout}>Sign out</button>
      </header>
      <main>{children}</main>
    </div>
  );
}
