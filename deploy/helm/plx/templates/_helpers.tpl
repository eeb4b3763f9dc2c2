{{- define "plx.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "plx.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "plx.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "plx.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "plx.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "plx.runsNamespace" -}}
{{- default (printf "%s-runs" .Release.Namespace) .Values.runsNamespace -}}
{{- end -}}

{{- define "plx.runsServiceAccountName" -}}
{{- default (printf "%s-run" (include "plx.fullname" .)) .Values.runsServiceAccount -}}
{{- end -}}

{{- define "plx.runsClaim" -}}
{{- if .Values.persistence.runsClaim -}}
{{- .Values.persistence.runsClaim -}}
{{- else if eq (include "plx.runsNamespace" .) .Release.Namespace -}}
{{- include "plx.dataClaim" . -}}
{{- else -}}
{{- fail "persistence.sharedWithRuns: set persistence.runsClaim, a claim of the runs' namespace on the same storage" -}}
{{- end -}}
{{- end -}}

{{- define "plx.databaseSecret" -}}
{{- default (printf "%s-database" (include "plx.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}

{{- define "plx.dataClaim" -}}
{{- default (printf "%s-data" (include "plx.fullname" .)) .Values.persistence.existingClaim -}}
{{- end -}}
