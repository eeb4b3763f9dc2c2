import { useSyncExternalStore } from "react";
import { getToken, getUsername, onAuthChange } from "./auth";

export function useAuth(): { token: string | null; username: string | null } {
  const token = useSyncExternalStore(onAuthChange, getToken);
  const username = useSyncExternalStore(onAuthChange, getUsername);
  return { token, username };
}
