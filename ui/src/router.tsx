import { lazy, Suspense, type ReactNode } from "react";
import { createBrowserRouter, Link, Navigate, Outlet, useLocation, useRouteError } from "react-router-dom";
import { Layout } from "./components/Layout";
import { useAuth } from "./lib/useAuth";
import { LoginPage } from "./pages/Login";
import { ProjectsPage } from "./pages/Projects";
import { ProjectPage } from "./pages/Project";

// Pages with charts load their code (and the chart libraries) only when opened.
const ExperimentPage = lazy(() => import("./pages/Experiment"));
const GroupPage = lazy(() => import("./pages/Group"));
const ComparePage = lazy(() => import("./pages/Compare"));

function RequireAuth() {
  const { token } = useAuth();
  const location = useLocation();
  if (!token) {
    const next = encodeURIComponent(location.pathname + location.search);
    return <Navigate to={`/login?next=${next}`} replace />;
  }
  return (
    <Layout>
      <Outlet />
    </Layout>
  );
}

/** A page that failed to render says why, with a way back, instead of going blank. */
function PageError() {
  const error = useRouteError();
  return (
    <div className="login">
      <div className="card">
        <h1>This page failed</h1>
        <div className="error" role="alert">
          {error instanceof Error ? error.message : String(error)}
        </div>
        <Link to="/">Back to the projects</Link>
      </div>
    </div>
  );
}

const later = (node: ReactNode) => <Suspense fallback={<p className="muted">Loading…</p>}>{node}</Suspense>;

export const router = createBrowserRouter([
  { path: "/login", element: <LoginPage />, errorElement: <PageError /> },
  {
    element: <RequireAuth />,
    errorElement: <PageError />,
    children: [
      { path: "/", element: <ProjectsPage /> },
      { path: "/projects/:user/:project", element: <ProjectPage /> },
      { path: "/projects/:user/:project/experiments/:id", element: later(<ExperimentPage />) },
      { path: "/projects/:user/:project/groups/:id", element: later(<GroupPage />) },
      { path: "/projects/:user/:project/compare", element: later(<ComparePage />) },
      { path: "*", element: <p className="error">No such page.</p> },
    ],
  },
]);
